"""Sampling, guided or not: the one pipeline (run), parsing modes, reports and figures."""
