"""Exceptions and warnings; each message says what the user can do about it."""

from __future__ import annotations


class CrosswatchError(Exception):
    """Base class of every error crosswatch raises on purpose."""


class ConfigError(CrosswatchError, ValueError):
    """An option, environment variable or config file holds a value crosswatch rejects."""


class ConfigTypeError(ConfigError, TypeError):
    """An argument of the wrong type (a ``TypeError`` too), such as ``recursive="yes"``."""


class NotStartedError(CrosswatchError, RuntimeError):
    """A watcher was asked for events before ``start()``."""


class WatchPathError(CrosswatchError, OSError):
    """A path given to watch cannot be watched (missing, unreadable, not a directory …)."""


class UnknownBackendError(ConfigError):
    """A backend was named that no installed plugin provides."""


class BackendUnavailableError(CrosswatchError):
    """No acceptable backend can watch a root, or a forced one cannot."""


class PluginError(CrosswatchError):
    """A plugin broke the registration contract (duplicate name, bad class …)."""


class WatchError(CrosswatchError, OSError):
    """Raised by a backend's ``watch``; the engine decides what it means.

    An ``OSError`` too, so ``errno`` and ``filename`` say what the OS refused.
    """


class WatchGoneError(WatchError):
    """The path vanished (or changed type) before a watch could be placed: not an error."""


class WatchLimitError(WatchError):
    """The OS refused more watches or handles; the engine falls back for that part."""


class CrosswatchWarning(UserWarning):
    """Something was skipped but watching goes on (an unreadable directory …)."""


class SnapshotError(CrosswatchError):
    """A snapshot cannot be written, read or compared (see its subclasses)."""


class NotASnapshotError(SnapshotError):
    """The file is not a crosswatch snapshot at all."""


class SnapshotCorruptError(SnapshotError):
    """The file is a snapshot whose content is damaged: a checksum or a record is wrong."""


class SnapshotTruncatedError(SnapshotCorruptError):
    """The file is the beginning of a snapshot whose end is missing."""


class SnapshotVersionError(SnapshotError):
    """The snapshot was written in a newer format than this crosswatch reads."""


class SnapshotMismatchError(SnapshotError):
    """The snapshot is of another root, or of another platform's file identities."""


class RemoteError(CrosswatchError):
    """Publishing to a message stream, or following one, failed (see its subclasses)."""


class ServerUnreachableError(RemoteError, ConnectionError):
    """No server answered at the URL given."""


class RemoteAuthError(RemoteError):
    """The server refused the credentials given."""


class RemoteTLSError(RemoteError):
    """The TLS handshake with the server failed: this side does not trust the
    server's certificate, or the server wants one from this side."""


class StreamMismatchError(RemoteError):
    """A stream of that name exists with settings crosswatch cannot use."""


class MessageError(RemoteError):
    """A message on the stream is not a crosswatch batch this version reads."""


class UnknownRootError(RemoteError):
    """A follower asked for a stream, or a root, that was never published."""


class FollowerGapError(RemoteError):
    """A follower cannot replay the stream past a gap, even from the newest baseline."""
