"""The demo: a tree of real nodes on this machine (localtree) and the sample
items played through it (play)."""
