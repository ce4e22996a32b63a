"""ccgate.cli"""
