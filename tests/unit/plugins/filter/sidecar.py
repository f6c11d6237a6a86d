# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""ansible-doc reads a filter's documentation from <name>.yml next to the file that implements it: the
check that such a sidecar matches the filter's signature, for every filter test module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import os

import yaml


def sidecar_documentation(plugin, filters, name):
    """The sidecar of filter `name` of `plugin` (a filter plugin module), checked against the signature
    of `filters[name]`: its name, an example using it, and one option per parameter in positional order."""
    with open(os.path.join(os.path.dirname(plugin.__file__), name + ".yml")) as stream:
        doc = yaml.safe_load(stream)
    assert doc["DOCUMENTATION"]["name"] == name
    assert "pfguard.macos.%s" % name in doc["EXAMPLES"]
    parameters = list(inspect.signature(filters[name]).parameters)
    assert sorted(doc["DOCUMENTATION"]["options"]) == sorted(["_input"] + parameters[1:])
    assert doc["DOCUMENTATION"].get("positional", "") == ", ".join(parameters[1:])
    return doc
