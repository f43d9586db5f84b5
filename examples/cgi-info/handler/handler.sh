#!/bin/sh
# The classic watchdog passes the request as CGI-style env and the body on stdin.
body=$(cat)
echo "method=${Http_Method} path=${Http_Path:-/} query=${Http_Query} body=${body}"
