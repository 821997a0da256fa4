"""The auction engine: the contract book, eligibility, pricing and distribution (DESIGN.md §8)."""
