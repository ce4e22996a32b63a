"""ccgate.setup"""
