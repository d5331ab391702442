"""`sasrec-rank`: SASRec trained for next-item ranking (the sequence family's collaborative baseline)."""
