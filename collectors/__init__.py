"""Source adapters: each turns one kind of outside world into typed samples, never raising."""
