"""ccgate.routing"""
