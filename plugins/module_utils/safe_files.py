# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Files the modules read and write as root, handled so that no path can make them do harm.

- Targets are checked before anything changes: a regular file or nothing, in an existing directory,
  never a symlink, device, FIFO or directory (/dev/null must stay a device).
- Writes go to a temporary file in the same directory that is complete and flushed before the
  target is replaced with rename(2), which replaces a name and never follows a link. StagedFile lets
  a module write the file before it changes the kernel, so a full disk changes nothing.
- Reads open with O_NOFOLLOW|O_NONBLOCK, accept regular files only (a FIFO would block, /dev/zero
  never ends) and stop at a byte limit.

ansible.module_utils.basic's atomic_move follows the target's symlinks and copies a device's
attributes, which is why these helpers exist."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import os
import stat
import tempfile

# Read limit for files a module only needs a part of or a small file from (1 MiB).
DEFAULT_READ_LIMIT = 1024 * 1024


class UnsafePath(Exception):
    """A path a module must not read or write; the message names the path and the reason."""


def check_path_text(path, what="path"):
    """Refuse paths that are not absolute or hold control characters (NUL, newline, ...)."""
    if not isinstance(path, str) or not path:
        raise UnsafePath("%s must be a non-empty string, got %r" % (what, path))
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise UnsafePath("%s %r contains a control character" % (what, path))
    if not path.startswith("/"):
        raise UnsafePath("%s %r is not an absolute path" % (what, path))


def command_path_problem(path, option, command):
    """Reason an external command's path option is unusable, or None: an absolute path without control
    characters naming an executable regular file."""
    try:
        check_path_text(path, option)
    except UnsafePath as exc:
        return str(exc)
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        mode = 0
    if not (stat.S_ISREG(mode) and os.access(path, os.X_OK)):
        return "%s not found or not executable at %s" % (command, path)
    return None


def _kind(mode):
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_write_target(path, what="file"):
    """Raise UnsafePath unless `path` is absent or a regular file (not a link) in an existing directory."""
    check_path_text(path, what)
    directory = os.path.dirname(path)
    if os.path.basename(path) in ("", ".", ".."):
        raise UnsafePath("%s %s does not name a file" % (what, path))
    if not os.path.isdir(directory):
        raise UnsafePath("%s %s: directory %s does not exist" % (what, path, directory))
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise UnsafePath("%s %s cannot be examined: %s" % (what, path, exc.strerror)) from None
    if not stat.S_ISREG(mode):
        raise UnsafePath("%s %s is %s; only a regular file is written" % (what, path, _kind(mode)))


def open_regular(path, what="file"):
    """A read-only descriptor of the regular file `path`, opened with O_NOFOLLOW|O_NONBLOCK and checked
    with fstat; None when it does not exist. Raises UnsafePath for links, FIFOs, sockets, devices and
    directories, which are never opened for reading (a FIFO would block, /dev/zero never ends)."""
    check_path_text(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.ELOOP:
            raise UnsafePath("%s %s is a symbolic link; it is not followed" % (what, path)) from None
        if exc.errno == errno.ENXIO:  # what open(2) says for a socket
            raise UnsafePath("%s %s is not a regular file (it is a socket)" % (what, path)) from None
        raise UnsafePath("%s %s cannot be opened: %s" % (what, path, exc.strerror)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafePath("%s %s is not a regular file (it is %s)" % (what, path, _kind(mode)))
    return fd


def read_bounded(path, limit=DEFAULT_READ_LIMIT, what="file"):
    """Bytes of the regular file `path`, at most `limit` of them; None when it does not exist.
    Raises UnsafePath as open_regular does, and for files over the limit."""
    fd = open_regular(path, what)
    if fd is None:
        return None
    try:
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise UnsafePath("%s %s is larger than %d bytes" % (what, path, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)


class StagedFile(object):
    """New contents for `path`, written and flushed to a temporary file beside it on creation;
    commit() puts it in place, discard() removes it. Check the target first (check_write_target).
    `owner` (uid, gid) sets the owner too, on the descriptor, before the file has its name."""

    def __init__(self, path, content, mode=0o644, owner=None):
        self.path = path
        self.tmp = None
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
        self.tmp = tmp
        try:
            data = content.encode("utf-8") if isinstance(content, str) else content
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            os.fchmod(fd, mode)
            os.fsync(fd)
        except OSError:
            os.close(fd)
            self.discard()
            raise
        os.close(fd)

    def commit(self):
        # The target may have been swapped for a link or a device since it was checked.
        check_write_target(self.path)
        os.rename(self.tmp, self.path)
        self.tmp = None

    def discard(self):
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None


def remove_stale_staged(path):
    """Remove what a StagedFile for `path` left behind when its writer was killed (regular files named
    like its temporary files, never links); returns their names. Call it only while holding the lock
    that every writer of `path` takes, so no live writer's file is removed."""
    directory, prefix = os.path.dirname(path), ".%s." % os.path.basename(path)
    removed = []
    for name in os.listdir(directory):
        candidate = os.path.join(directory, name)
        if name.startswith(prefix) and stat.S_ISREG(os.lstat(candidate).st_mode):
            os.unlink(candidate)
            removed.append(name)
    return removed


def write_file(path, content, mode=0o644):
    """Check the target, then replace it atomically with `content`."""
    check_write_target(path)
    staged = StagedFile(path, content, mode)
    try:
        staged.commit()
    finally:
        staged.discard()
