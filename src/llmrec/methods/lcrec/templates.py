"""LC-Rec's instruction templates, verbatim from the official `prompt.py` (one is drawn per sample).

Fields: {inters} history as indices, {inter_titles} history as quoted titles, {item} an index, {title},
{description}, {explicit_preference}, {user_related_intention}, {item_related_intention}, {query}.
The official run tests sequential recommendation with seqrec template 0. The compact wrapper and the
all-positions instruction below are ours, not the official code's.
"""
from __future__ import annotations

SFT_PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
              "request.\n\n### Instruction:\n{instruction}\n\n### Response:{response}")
"""The Alpaca-style wrapper; the response follows "### Response:" with no space."""

COMPACT_PROMPT = "{instruction}\nResponse:{response}"
"""Ours (`LCRecConfig.template="compact"`): the instruction and a short response marker, without the Alpaca
preamble (about 40 fewer prompt tokens per sample that carry no loss)."""

WRAPPERS = {"alpaca": SFT_PROMPT, "compact": COMPACT_PROMPT}
"""`LCRecConfig.template` -> wrapper ({instruction}, {response})."""

SEQUENCE_INSTRUCTION = "List the items the user interacted with, in chronological order."
"""Ours: the instruction of the all-positions task (`seqrec_all_positions`), whose response is the user's items
spelled one after another; the model predicts each next item from the ones before it."""

SEQREC = [
    ("The user has interacted with items {inters} in chronological order. Can you predict the next possible item that the user may expect?", "{item}"),
    ("I find the user's historical interactive items: {inters}, and I want to know what next item the user needs. Can you help me decide?", "{item}"),
    ("Here are the user's historical interactions: {inters}, try to recommend another item to the user. Note that the historical interactions are arranged in chronological order.", "{item}"),
    ("Based on the items that the user has interacted with: {inters}, can you determine what item would be recommended to him next?", "{item}"),
    ("The user has interacted with the following items in order: {inters}. What else do you think the user need?", "{item}"),
    ("Here is the item interaction history of the user: {inters}, what to recommend to the user next?", "{item}"),
    ("Which item would the user be likely to interact with next after interacting with items {inters}?", "{item}"),
    ("By analyzing the user's historical interactions with items {inters}, what is the next expected interaction item?", "{item}"),
    ("After interacting with items {inters}, what is the next item that could be recommended for the user?", "{item}"),
    ("Given the user's historical interactive items arranged in chronological order: {inters}, can you recommend a suitable item for the user?", "{item}"),
    ("Considering the user has interacted with items {inters}. What is the next recommendation for the user?", "{item}"),
    ("What is the top recommended item for the user who has previously interacted with items {inters} in order?", "{item}"),
    ("The user has interacted with the following items in the past in order: {inters}. Please predict the next item that the user most desires based on the given interaction records.", "{item}"),
    ("Using the user's historical interactions as input data, suggest the next item that the user is highly likely to enjoy. The historical interactions are provided as follows: {inters}.", "{item}"),
    ("You can access the user's historical item interaction records: {inters}. Now your task is to recommend the next potential item to him, considering his past interactions.", "{item}"),
    ("You have observed that the user has interacted with the following items: {inters}, please recommend a next item that you think would be suitable for the user.", "{item}"),
    ("You have obtained the ordered list of user historical interaction items, which is as follows: {inters}. Using this history as a reference, please select the next item to recommend to the user.", "{item}"),
]

ITEM2INDEX = [
    ("Which item has the title: \"{title}\"?", "{item}"),
    ("Which item is assigned the title: \"{title}\"?", "{item}"),
    ("An item is called \"{title}\", could you please let me know which item it is?", "{item}"),
    ("Which item is called \"{title}\"?", "{item}"),
    ("One of the items is named \"{title}\", can you tell me which item this is?", "{item}"),
    ("What is the item that goes by the title \"{title}\"?", "{item}"),
    ("An item can be described as follows: \"{description}\". Which item is it describing?", "{item}"),
    ("Can you tell me what item is described as \"{description}\"?", "{item}"),
    ("Can you provide the item that corresponds to the following description: \"{description}\"?", "{item}"),
    ("Which item has the following characteristics: \"{description}\"?", "{item}"),
    ("Which item is characterized by the following description: \"{description}\"?", "{item}"),
    ("I am curious to know which item can be described as follows: \"{description}\". Can you tell me?", "{item}"),
    ("An item is called \"{title}\" and described as \"{description}\", can you tell me which item it is?", "{item}"),
    ("Could you please identify what item is called \"{title}\" and described as \"{description}\"?", "{item}"),
    ("Which item is called \"{title}\" and has the characteristics described below: \"{description}\"?", "{item}"),
    ("Please show me which item is named \"{title}\" and its corresponding description is: \"{description}\".", "{item}"),
    ("Determine which item this is by its title and description. The title is: \"{title}\", and the description is: \"{description}\".", "{item}"),
    ("Based on the title: \"{title}\", and the description: \"{description}\", answer which item is this?", "{item}"),
    ("Can you identify the item from the provided title: \"{title}\", and description: \"{description}\"?", "{item}"),
]

INDEX2ITEM = [
    ("What is the title of item {item}?", "{title}"),
    ("What title is assigned to item {item}?", "{title}"),
    ("Could you please tell me what item {item} is called?", "{title}"),
    ("Can you provide the title of item {item}?", "{title}"),
    ("What item {item} is referred to as?", "{title}"),
    ("Would you mind informing me about the title of item {item}?", "{title}"),
    ("Please provide a description of item {item}.", "{description}"),
    ("Briefly describe item {item}.", "{description}"),
    ("Can you share with me the description corresponding to item {item}?", "{description}"),
    ("What is the description of item {item}?", "{description}"),
    ("How to describe the characteristics of item {item}?", "{description}"),
    ("Could you please tell me what item {item} looks like?", "{description}"),
    ("What is the title and description of item {item}?", "{title}\n\n{description}"),
    ("Can you provide the corresponding title and description for item {item}?", "{title}\n\n{description}"),
    ("Please tell me what item {item} is called, along with a brief description of it.", "{title}\n\n{description}"),
    ("Would you mind informing me about the title of the item {item} and how to describe its characteristics?", "{title}\n\n{description}"),
    ("I need to know the title and description of item {item}. Could you help me with that?", "{title}\n\n{description}"),
]

FUSIONSEQREC = [
    ("The user has sequentially interacted with items {inters}. Can you recommend the next item for him? Tell me the title of the item？", "{title}"),
    ("Based on the user's historical interactions: {inters}, try to predict the title of the item that the user may need next.", "{title}"),
    ("Utilizing the user's past ordered interactions, which include items {inters}, please recommend the next item you think is suitable for the user and provide its title.", "{title}"),
    ("After interacting with items {inters}, what is the most probable item for the user to interact with next? Kindly provide the item's title.", "{title}"),
    ("Please review the user's historical interactions: {inters}, and describe what kind of item he still needs.", "{description}"),
    ("Here is the item interaction history of the user: {inters}, please tell me what features he expects from his next item.", "{description}"),
    ("By analyzing the user's historical interactions with items {inters}, can you infer what the user's next interactive item will look like?", "{description}"),
    ("Access the user's historical item interaction records: {inters}. Your objective is to describe the next potential item for him, taking into account his past interactions.", "{description}"),
    ("Given the title sequence of user historical interactive items: {inter_titles}, can you recommend a suitable next item for the user?", "{item}"),
    ("I possess a user's past interaction history, denoted by the title sequence of interactive items: {inter_titles}, and I am interested in knowing the user's next most desired item. Can you help me?", "{item}"),
    ("Considering the title sequence of user history interaction items: {inter_titles}. What is the next recommendation for the user?", "{item}"),
    ("You have obtained the ordered title list of user historical interaction items, as follows: {inter_titles}. Based on this historical context, kindly choose the subsequent item for user recommendation.", "{item}"),
]

ITEMSEARCH = [
    ("Here is the historical interactions of a user: {inters}. And his personalized preferences are as follows: \"{explicit_preference}\". Your task is to recommend an item that is consistent with the user's preference.", "{item}"),
    ("The user has interacted with a list of items, which are as follows: {inters}. Based on these interacted items, the user current intent is as follows \"{user_related_intention}\", and your task is to generate an item that matches the user's current intent.", "{item}"),
    ("As a recommender system, you are assisting a user who has recently interacted with the following items: {inters}. The user expresses a desire to obtain another item with the following characteristics: \"{item_related_intention}\". Please recommend an item that meets these criteria.", "{item}"),
    ("Using the user's current query: \"{query}\" and his historical interactions: {inters}, you can estimate the user's preferences \"{explicit_preference}\". Please respond to the user's query by selecting an item that best matches his preference and query.", "{item}"),
    ("The user needs a new item and searches for: \"{query}\". In addition, he has previously interacted with: {inters}. You can obtain his preference by analyzing his historical interactions: \"{explicit_preference}\". Can you recommend an item that best matches the search query and preferences?", "{item}"),
    ("Based on the user's historical interactions with the following items: {inters}. You can infer his preference by observing the historical interactions: \"{explicit_preference}\". Now the user wants a new item and searches for: \"{query}\". Please select a suitable item that matches his preference and search intent.", "{item}"),
    ("Suppose you are a search engine, now a user searches that: \"{query}\", can you select an item to respond to the user's query?", "{item}"),
    ("As a search engine, your task is to answer the user's query by generating a related item. The user's query is provided as \"{query}\". Please provide your generated item as your answer.", "{item}"),
    ("As a recommender system, your task is to recommend an item that is related to the user's request, which is specified as follows: \"{query}\". Please provide your recommendation.", "{item}"),
    ("You meet a user's query: \"{query}\". Please respond to this user by selecting an appropriate item.", "{item}"),
    ("Your task is to recommend the best item that matches the user's query. Here is the search query of the user: \"{query}\", tell me the item you recommend.", "{item}"),
]

PREFERENCEOBTAIN = [
    ("The user has interacted with items {inters} in chronological order. Please estimate his preferences.", "{explicit_preference}"),
    ("Based on the items that the user has interacted with: {inters}, can you infer what preferences he has?", "{explicit_preference}"),
    ("Can you provide a summary of the user's preferences based on his historical interactions: {inters}?", "{explicit_preference}"),
    ("After interacting with items {inters} in order, what preferences do you think the user has?", "{explicit_preference}"),
    ("Here is the item interaction history of the user: {inters}, could you please infer the user's preferences.", "{explicit_preference}"),
    ("Based on the user's historical interaction records: {inters}, what are your speculations about his preferences?", "{explicit_preference}"),
    ("Given the user's historical interactive items arranged in chronological order: {inters}, what can be inferred about the preferences of the user?", "{explicit_preference}"),
    ("Can you speculate on the user's preferences based on his historical item interaction records: {inters}?", "{explicit_preference}"),
    ("What is the preferences of a user who has previously interacted with items {inters} sequentially?", "{explicit_preference}"),
    ("Using the user's historical interactions as input data, summarize the user's preferences. The historical interactions are provided as follows: {inters}.", "{explicit_preference}"),
    ("Utilizing the ordered list of the user's historical interaction items as a reference, please make an informed estimation of the user's preferences. The historical interactions are as follows: {inters}.", "{explicit_preference}"),
]

TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "seqrec": SEQREC, "item2index": ITEM2INDEX, "index2item": INDEX2ITEM, "fusionseqrec": FUSIONSEQREC,
    "itemsearch": ITEMSEARCH, "preferenceobtain": PREFERENCEOBTAIN,
}
"""Task name -> [(instruction, response)] templates."""
