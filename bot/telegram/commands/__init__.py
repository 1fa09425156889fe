"""One module per group of commands, each with its buttons; bot.telegram.app registers them."""
