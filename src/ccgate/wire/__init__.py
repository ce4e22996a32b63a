"""ccgate.wire"""
