"""Stage 4a: measure how anonymous a distilled set is (nearest patch, membership inference, text/header leaks)."""
