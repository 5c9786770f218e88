"""Training the answer selector (torch only; never imported on the question path)."""
