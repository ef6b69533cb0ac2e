"""Simulated production traffic: scenario generators and the HTTP sender."""
