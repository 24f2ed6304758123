"""block/: the block layer's registration points."""
