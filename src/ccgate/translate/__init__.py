"""ccgate.translate"""
