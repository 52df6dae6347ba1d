"""DIMSE front door (PS3.4, PS3.7, PS3.8): C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET and Storage
Commitment over pynetdicom, handing everything to the archive core."""
