"""llmrec"""
