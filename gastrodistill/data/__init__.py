"""Stage 1: whole X-rays -> validated manifest -> labelled patch store -> DataModules."""
