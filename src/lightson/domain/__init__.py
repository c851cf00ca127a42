"""The vocabulary of Lights On: assets, tariffs, DR programs, plans, time and errors."""
