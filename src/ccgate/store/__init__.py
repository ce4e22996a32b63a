"""ccgate.store"""
