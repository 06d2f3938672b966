"""A domain's kit: overlay, tools, the Domain record, one episode's environment."""
