"""ccgate.doctor"""
