"""Views of plans and results for people and other tools: tables, JSON, figures."""
