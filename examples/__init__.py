"""Examples: tasks, an app built from config.yml, a worker and a sender."""
