"""Stage 4a: how anonymous is a distilled set (nearest patch, membership inference, text/header leaks)."""
