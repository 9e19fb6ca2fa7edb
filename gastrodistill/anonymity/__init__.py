"""Stage 4a: measure how anonymous a distilled set is (nearest real patch, membership inference, text/header leaks)."""
