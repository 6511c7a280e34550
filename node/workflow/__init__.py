"""The 13710 workflow as a node's own writer: who may do what to an item
(actions) and the unsigned events a person's action becomes (drafts)."""
