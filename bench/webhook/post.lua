-- wrk request for bench/webhook/run.sh: a small JSON POST, like a website form posting a lead.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Ana","email":"ana@example.com"}'
