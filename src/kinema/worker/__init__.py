"""Workers: threads that claim tasks, fetch their inputs, run the engine and finish them."""
