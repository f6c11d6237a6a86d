# SPDX-License-Identifier: GPL-3.0-or-later
"""Emulated /usr/bin/plutil (docs/reference/macos.md#plutil): -lint, -convert, -p, -extract, -type, -insert,
-replace, -remove, -create, -help.

Paths are used exactly as given (relative to the cwd, never prefixed with $PFGUARD_LAB_ROOT): plutil
is a plain file tool, and inside a lab host the root is / anyway. Reading and writing uses plistlib;
OpenStep-format plists (which the real plutil reads) fail loudly.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import plistlib
import sys
import xml.parsers.expat

HELP = """plutil: [command_option] [other_options] file...
The file '-' means stdin
Command options are (-lint is the default):
 -help                         show this message and exit
 -lint                         check the property list files for syntax errors
 -convert fmt                  rewrite property list files in format
                               fmt is one of: xml1 binary1 json swift objc
 -insert keypath -type value   insert a value into the property list before writing it out
 -replace keypath -type value  same as -insert, but it will overwrite an existing value
 -remove keypath               removes the value at 'keypath' from the property list before writing it out
 -extract keypath fmt          outputs the value at 'keypath' in the property list as a new plist of type 'fmt'
                               fmt is one of: xml1 binary1 json raw
 -type keypath                 outputs the type of the value at 'keypath' in the property list
 -create fmt                   creates an empty plist of the specified format
 -p                            print property list in a human-readable fashion
                               (not for machine parsing! this 'format' is not stable)
There are some additional optional arguments that apply to the -convert, -insert, -remove, -replace, and -extract verbs:
 -s                            be silent on success
 -o path                       specify alternate file path name for result;
                               the -o option is used with -convert, and is only
                               useful with one file argument (last file overwrites);
                               the path '-' means stdout
 -e extension                  specify alternate extension for converted files
 -r                            if writing JSON, output in human-readable form
 -n                            prevent printing a terminating newline if it is not part of the format, such as with raw
 --                            specifies that all further arguments are file names
"""
VALUE_TYPES = ("bool", "integer", "float", "string", "date", "data", "xml", "json", "dictionary", "array")
KNOWN_TAGS = {"plist", "dict", "key", "array", "string", "integer", "real", "true", "false", "date", "data"}


class PlutilError(Exception):
    """Ends the command with `message` on stderr and exit 1."""


class Unsupported(PlutilError):
    def __init__(self, construct: str) -> None:
        super().__init__(f"pfguard-lab: plutil: {construct} is not supported by the lab")


# ---- reading


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        raise PlutilError(f"{path}: file does not exist or is not readable or is not a regular file") from None


def xml_problem(data: bytes) -> str | None:
    """Apple-style text for a malformed XML plist (CFPropertyList wording), or None if it looks sane."""
    stack: list[list] = []  # [tag, expecting_key, line_of_pending_key]
    problem: list[str] = []
    parser = xml.parsers.expat.ParserCreate()

    def start(tag, _attrs):
        line = parser.CurrentLineNumber
        if problem:
            return
        if tag not in KNOWN_TAGS:
            problem.append(f"Encountered unknown tag {tag} on line {line}")
            return
        if stack and stack[-1][0] == "dict":
            frame = stack[-1]
            if frame[1] and tag != "key":
                problem.append(f"Found non-key inside <dict> at line {line}")
                return
            if not frame[1] and tag == "key":
                problem.append(f"Value missing for key inside <dict> at line {frame[2]}")
                return
            frame[1] = tag != "key"
            frame[2] = line
        stack.append([tag, True, line])

    def end(tag):
        if problem:
            return
        frame = stack.pop()
        if tag == "dict" and not frame[1]:
            problem.append(f"Value missing for key inside <dict> at line {frame[2]}")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        if problem:
            return problem[0]
        if exc.code in (xml.parsers.expat.errors.codes[xml.parsers.expat.errors.XML_ERROR_NO_ELEMENTS],
                        xml.parsers.expat.errors.codes[xml.parsers.expat.errors.XML_ERROR_UNCLOSED_TOKEN]):
            return "Encountered unexpected EOF"
        if exc.code == xml.parsers.expat.errors.codes[xml.parsers.expat.errors.XML_ERROR_TAG_MISMATCH]:
            open_tag = stack[-1][0] if stack else "plist"
            return f"Close tag on line {exc.lineno} does not match open tag {open_tag}"
        return f"Unexpected character at line {exc.lineno}"  # UNVERIFIED wording
    return problem[0] if problem else None


def parse_plist(data: bytes):
    """Returns (value, format) for an XML or binary plist; raises ValueError with Apple-style text."""
    stripped = data.lstrip()
    if not data:
        raise ValueError("Cannot parse a NULL or zero-length data")
    if data.startswith(b"bplist"):
        try:
            return plistlib.loads(data, fmt=plistlib.FMT_BINARY), "binary1"
        except Exception:
            raise ValueError("Invalid binary property list") from None  # UNVERIFIED wording
    if stripped.startswith(b"<"):
        problem = xml_problem(data)
        if problem:
            raise ValueError(problem)
        try:
            return plistlib.loads(data, fmt=plistlib.FMT_XML), "xml1"
        except Exception as exc:
            raise ValueError(f"Encountered malformed value ({exc})") from None  # UNVERIFIED wording
    if stripped[:1] in (b"{", b"(", b'"'):
        raise Unsupported("an OpenStep-format property list")
    first = stripped[:1].decode("latin-1") or " "
    raise ValueError(f"Unexpected character {first} at line 1")


def parse_any(path: str, data: bytes):
    """-convert and friends also accept JSON input, reporting both parsers' errors."""
    try:
        return parse_plist(data)
    except Unsupported:
        # Text starting with { may be JSON rather than OpenStep: only fail loudly if it is not JSON.
        try:
            return from_json(json.loads(data), path), "json"
        except ValueError:
            raise Unsupported("an OpenStep-format property list") from None
    except ValueError as plist_error:
        try:
            value = json.loads(data)
        except ValueError as json_error:
            raise PlutilError(
                f"{path}: Property List error: {plist_error} / JSON error: {json_error}"
            ) from None
        return from_json(value, path), "json"


def from_json(value, path: str):
    if value is None:
        raise PlutilError(f"{path}: invalid object in plist for destination format")
    if isinstance(value, list):
        return [from_json(item, path) for item in value]
    if isinstance(value, dict):
        return {key: from_json(item, path) for key, item in value.items()}
    return value


# ---- writing


def json_text(value, readable: bool, path: str) -> bytes:
    def check(item):
        if isinstance(item, (datetime.datetime, bytes, bytearray)):
            raise PlutilError(f"{path}: invalid object in plist for destination format")
        if isinstance(item, dict):
            for child in item.values():
                check(child)
        elif isinstance(item, list):
            for child in item:
                check(child)

    check(value)
    if readable:
        text = json.dumps(value, indent=2, separators=(",", " : "), ensure_ascii=False)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # NSJSONSerialization escapes '/' (UNVERIFIED for recent releases).
    return text.replace("/", "\\/").encode()


def encode(value, fmt: str, readable: bool, path: str) -> bytes:
    if fmt == "xml1":
        return plistlib.dumps(value, fmt=plistlib.FMT_XML)
    if fmt == "binary1":
        return plistlib.dumps(value, fmt=plistlib.FMT_BINARY)
    if fmt == "json":
        return json_text(value, readable, path)
    raise Unsupported(f"the {fmt} output format")


def write_output(target: str, data: bytes) -> None:
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    tmp = f"{target}.plutil-tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    if os.path.exists(target):
        os.chmod(tmp, os.stat(target).st_mode & 0o7777)
    os.replace(tmp, target)


# ---- -p


def pretty(value, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{\n" + pad + "}"
        body = "".join(f'{pad}  "{key}" => {pretty(value[key], indent + 1)}\n' for key in sorted(value))
        return "{\n" + body + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[\n" + pad + "]"
        body = "".join(f"{pad}  {index} => {pretty(item, indent + 1)}\n" for index, item in enumerate(value))
        return "[\n" + body + pad + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S +0000")
    if isinstance(value, (bytes, bytearray)):
        shown = bytes(value[:24]).hex()
        more = "..." if len(value) > 24 else ""
        return f"{{length = {len(value)}, bytes = 0x{shown}{more}}}"
    return '"' + str(value) + '"'


# ---- key paths


def split_keypath(keypath: str) -> list[str]:
    return keypath.split(".") if keypath else []


def lookup(root, keypath: str):
    node = root
    for part in split_keypath(keypath):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(keypath)
    return node


def type_name(value) -> str:
    for kind, name in ((bool, "bool"), (int, "integer"), (float, "float"), (str, "string"),
                       (datetime.datetime, "date"), ((bytes, bytearray), "data"), (dict, "dictionary"),
                       (list, "array")):
        if isinstance(value, kind):
            return name
    return "unknown"


def raw_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return "\n".join(value)
    return str(len(value))


def typed_value(kind: str, text: str | None):
    if kind == "dictionary":
        return {}
    if kind == "array":
        return []
    if text is None:
        raise PlutilError(f"-{kind} requires a value")  # UNVERIFIED wording
    if kind == "bool":
        return text in ("YES", "true")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise PlutilError(f"'{text}' is not a valid integer") from None  # UNVERIFIED wording
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise PlutilError(f"'{text}' is not a valid float") from None
    if kind == "string":
        return text
    if kind == "date":
        try:
            return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise PlutilError(f"'{text}' is not a valid date") from None
    if kind == "data":
        try:
            return base64.b64decode(text, validate=True)
        except ValueError:
            raise PlutilError(f"'{text}' is not valid base64 data") from None
    if kind == "json":
        try:
            return from_json(json.loads(text), "-json")
        except ValueError as exc:
            raise PlutilError(f"Invalid JSON: {exc}") from None
    try:
        return parse_plist(text.encode())[0]
    except ValueError as exc:
        raise PlutilError(f"Invalid XML: {exc}") from None


def modify(root, verb: str, keypath: str, value=None, append: bool = False) -> None:
    parts = split_keypath(keypath)
    if not parts:
        raise PlutilError("Could not modify plist, error: empty key path")
    try:
        parent = lookup(root, ".".join(parts[:-1]))
    except KeyError:
        raise PlutilError(
            f"Could not modify plist, error: No value at that key path or invalid key path: {keypath}"
        ) from None
    last = parts[-1]
    if isinstance(parent, dict):
        if verb == "insert" and append and isinstance(parent.get(last), list):
            parent[last].append(value)
        elif verb == "insert" and last in parent:
            raise PlutilError(f"Could not modify plist, error: Value already exists at key path {keypath}")
        elif verb == "remove":
            if last not in parent:
                raise PlutilError(f"Could not modify plist, error: No value to remove at key path {keypath}")
            del parent[last]
        else:
            parent[last] = value
        return
    if isinstance(parent, list) and last.isdigit():
        index = int(last)
        if verb == "remove" and index < len(parent):
            del parent[index]
            return
        if verb == "insert" and index <= len(parent):
            parent.insert(index, value)
            return
        if verb == "replace" and index < len(parent):
            parent[index] = value
            return
        if verb == "replace" and index == len(parent):
            parent.append(value)
            return
    raise PlutilError(f"Could not modify plist, error: No value at that key path or invalid key path: {keypath}")


# ---- argument handling


class Options:
    def __init__(self) -> None:
        self.mode = "lint"
        self.fmt: str | None = None
        self.keypath: str | None = None
        self.value_type: str | None = None
        self.value: str | None = None
        self.append = False
        self.silent = False
        self.output: str | None = None
        self.extension: str | None = None
        self.readable = False
        self.no_newline = False
        self.files: list[str] = []


def parse_arguments(argv: list[str]) -> Options:
    options = Options()
    args = iter(argv)

    def need(what: str) -> str:
        try:
            return next(args)
        except StopIteration:
            raise PlutilError(what) from None

    for arg in args:
        if arg == "--":
            options.files += list(args)
        elif arg in ("-help", "--help", "-h"):
            options.mode = "help"
        elif arg == "-lint":
            options.mode = "lint"
        elif arg == "-p":
            options.mode = "print"
        elif arg in ("-convert", "-create"):
            options.mode = arg[1:]
            options.fmt = need(f"{arg} requires a format argument of xml1 binary1 json")
        elif arg == "-extract":
            options.mode = "extract"
            options.keypath = need("-extract requires a key path and a format")
            options.fmt = need("-extract requires a key path and a format")
        elif arg == "-type":
            options.mode = "type"
            options.keypath = need("-type requires a key path")
        elif arg in ("-insert", "-replace"):
            options.mode = arg[1:]
            options.keypath = need(f"{arg} requires a key path, a type and a value")
            kind = need(f"{arg} requires a key path, a type and a value")
            if not kind.startswith("-") or kind[1:] not in VALUE_TYPES:
                raise PlutilError(f"Unrecognized type: {kind}")  # UNVERIFIED wording
            options.value_type = kind[1:]
            if options.value_type not in ("dictionary", "array"):
                options.value = need(f"{arg} requires a value")
        elif arg == "-append":
            options.append = True
        elif arg == "-remove":
            options.mode = "remove"
            options.keypath = need("-remove requires a key path")
        elif arg == "-expect":
            raise Unsupported("-extract -expect")
        elif arg == "-s":
            options.silent = True
        elif arg == "-o":
            options.output = need("-o requires a path argument")
        elif arg == "-e":
            options.extension = need("-e requires an extension argument")
        elif arg == "-r":
            options.readable = True
        elif arg == "-n":
            options.no_newline = True
        elif arg.startswith("-") and len(arg) > 1:
            raise PlutilError(f"unrecognized option: {arg}\n{HELP}".rstrip("\n"))
        else:
            options.files.append(arg)
    return options


def lint(options: Options) -> int:
    status = 0
    for path in options.files:
        try:
            parse_plist(read_input(path))
        except ValueError as exc:
            # docs/reference/macos.md#plutil: "FILE: <parser message>", exit 1. Stream UNVERIFIED (stderr chosen).
            sys.stderr.write(f"{path}: {exc}\n")
            status = 1
            continue
        except Unsupported:
            raise
        except PlutilError as exc:
            sys.stderr.write(f"{exc}\n")
            status = 1
            continue
        if not options.silent:
            sys.stdout.write(f"{path}: OK\n")
    return status


def convert(options: Options) -> int:
    fmt = options.fmt
    if fmt in ("swift", "objc"):
        raise Unsupported(f"-convert {fmt}")
    if fmt not in ("xml1", "binary1", "json"):
        raise PlutilError(f"unrecognized format {fmt}\nformat should be one of: xml1 binary1 json")
    status = 0
    for path in options.files:
        try:
            value, _ = parse_any(path, read_input(path))
            data = encode(value, fmt, options.readable, path)
        except Unsupported:
            raise
        except PlutilError as exc:
            sys.stderr.write(f"{exc}\n")
            status = 1
            continue
        write_output(output_path(path, options), data)
    return status


def output_path(path: str, options: Options) -> str:
    if options.output:
        return options.output
    if options.extension:
        return os.path.splitext(path)[0] + "." + options.extension
    if path == "-":
        return "-"
    return path


def print_plists(options: Options) -> int:
    status = 0
    for path in options.files:
        try:
            value, _ = parse_any(path, read_input(path))
        except Unsupported:
            raise
        except PlutilError as exc:
            sys.stderr.write(f"{exc}\n")
            status = 1
            continue
        sys.stdout.write(pretty(value) + "\n")
    return status


def extract(options: Options) -> int:
    if options.fmt not in ("xml1", "binary1", "json", "raw"):
        raise PlutilError(f"unrecognized format {options.fmt}\nformat should be one of: xml1 binary1 json raw")
    status = 0
    for path in options.files:
        value, _ = parse_any(path, read_input(path))
        try:
            found = lookup(value, options.keypath or "")
        except KeyError:
            sys.stderr.write(f"{path}: Could not extract value, error: No value at that key path or invalid key "
                             f"path: {options.keypath}\n")
            status = 1
            continue
        if options.fmt == "raw":
            text = raw_text(found) + ("" if options.no_newline else "\n")
            write_output(options.output or "-", text.encode())
        else:
            # Without -o the result replaces the input file, as plutil does (UNVERIFIED for raw-less use).
            write_output(output_path(path, options), encode(found, options.fmt, options.readable, path))
    return status


def show_type(options: Options) -> int:
    status = 0
    for path in options.files:
        value, _ = parse_any(path, read_input(path))
        try:
            found = lookup(value, options.keypath or "")
        except KeyError:
            sys.stderr.write(f"{path}: Could not extract value, error: No value at that key path or invalid key "
                             f"path: {options.keypath}\n")
            status = 1
            continue
        sys.stdout.write(type_name(found) + ("" if options.no_newline else "\n"))
    return status


def change(options: Options) -> int:
    new_value = None
    if options.mode != "remove":
        new_value = typed_value(options.value_type or "string", options.value)
    status = 0
    for path in options.files:
        value, fmt = parse_any(path, read_input(path))
        try:
            modify(value, options.mode, options.keypath or "", new_value, options.append)
        except PlutilError as exc:
            sys.stderr.write(f"{path}: {exc}\n")
            status = 1
            continue
        write_output(output_path(path, options), encode(value, fmt, options.readable, path))
    return status


def create(options: Options) -> int:
    if options.fmt not in ("xml1", "binary1", "json"):
        raise PlutilError(f"unrecognized format {options.fmt}\nformat should be one of: xml1 binary1 json")
    for path in options.files:
        write_output(path, encode({}, options.fmt, options.readable, path))
    return 0


MODES = {
    "lint": lint,
    "convert": convert,
    "print": print_plists,
    "extract": extract,
    "type": show_type,
    "insert": change,
    "replace": change,
    "remove": change,
    "create": create,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if not argv:
            raise PlutilError("No files specified.")
        options = parse_arguments(argv)
        if options.mode == "help":
            sys.stdout.write(HELP)
            return 0
        if not options.files:
            raise PlutilError(f"No files specified.\n{HELP}".rstrip("\n"))
        return MODES[options.mode](options)
    except PlutilError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    finally:
        sys.stdout.flush()
