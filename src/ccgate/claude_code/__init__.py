"""What ccgate knows about Claude Code as a program on this machine, for the doctor and setup.

``files`` says where Claude Code keeps its settings and state, and which settings file wins;
``env`` names the variables it reads and the rules between them (credentials, provider
switches, proxies) and which values are secrets. The doctor reads through this model and setup
writes through it, so the two always mean the same file and the same variable. The facts come
from the 2.1.330 binary and the shared reference "Claude Code as a client".
"""

from ccgate.claude_code.files import ClaudeFiles, SettingsFile

__all__ = ["ClaudeFiles", "SettingsFile"]
