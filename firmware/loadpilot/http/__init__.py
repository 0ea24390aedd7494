# HTTP transport: the server (server), the login (auth) and /cnf + static files (service). docs/http.md
