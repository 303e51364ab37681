"""
Operators: who may log in to this shell, with which role and keys.
"""
from __future__ import annotations

from appliance.shell.commands.helpers import object_commands, setting
from appliance.shell.commands.modes import OPERATOR, command
from appliance.shell.grammar import NO_STR

object_commands(
    "operator", "OPERATOR", OPERATOR, "A person who may log in to this shell",
    "Operator name (the SSH login name)",
    add=lambda ctx, name: ctx.root.add_operator(name),
    remove=lambda ctx, name: ctx.root.remove_operator(name),
    children=lambda root, parent: list(root.operators.keys()))

setting(OPERATOR, "role", "(admin|view)", "role",
        "What the operator may do (view: show only)", "Role")


@command(OPERATOR, "ssh-key LINE",
         help=("Allow an SSH public key", "OpenSSH public key line"),
         render=lambda o: [(k,) for k in o.ssh_keys])
def operator_ssh_key(ctx, line):
    ctx.obj.add_ssh_key(line)


@command(OPERATOR, "no ssh-key LINE",
         help=(NO_STR, "An SSH public key", "Key line or SHA256 fingerprint"))
def no_operator_ssh_key(ctx, line):
    ctx.obj.remove_ssh_key(line)


@command(OPERATOR, "password PASSWORD",
         help=("SSH login password (kept hashed)", "The password"))
def operator_password(ctx, password):
    ctx.obj.set_password(password)


@command(OPERATOR, "password-hash WORD",
         help=("SSH password as its hash (from show running-config)",
               "scrypt$... hash"),
         render=lambda o: [] if o.password_hash is None
         else [(o.password_hash,)])
def operator_password_hash(ctx, value):
    ctx.obj.set_password_hash(value)


@command(OPERATOR, "no password", help=(NO_STR, "SSH login password"))
def no_operator_password(ctx):
    ctx.obj.set_password(None)
