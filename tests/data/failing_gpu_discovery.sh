#!/usr/bin/env bash
echo "no GPU on this node" >&2
exit 3
