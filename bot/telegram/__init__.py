"""The front door: the python-telegram-bot Application, commands, buttons, messages."""
