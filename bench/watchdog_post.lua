-- wrk: POST a small body (what a classic `cat` function echoes).
wrk.method = "POST"
wrk.body = "hello"
wrk.headers["Content-Type"] = "text/plain"
