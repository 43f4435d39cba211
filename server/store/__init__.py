"""What the server keeps for its clients across requests and restarts: stored Responses."""
