"""Services: everything that changes state. Interfaces (views, tasks, commands) call these."""
