"""One conversation: messages, the sans-IO episode, the task schema, records."""
