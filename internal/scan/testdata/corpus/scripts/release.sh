#!/bin/sh
set -eu
export GH_TOKEN="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"
gh release create "$TAG"
