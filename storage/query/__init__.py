"""Searching the index (QIDO-RS, C-FIND, C-MOVE/C-GET): the attribute registry, the search
model, one matcher per PS3.4 C.2.2.2 matching type, the SQL plan, and result shaping."""
