"""The heads trained on cached features, the inputs each fits, and their checkpoints."""
