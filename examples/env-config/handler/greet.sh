#!/bin/sh
# greeting and target come from stack.yml's environment (baked into the image's env at build
# time, and overridable per deployment with faas-cli's --env).
echo "${greeting:-Hi}, ${target:-world}!"
