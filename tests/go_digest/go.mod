module procwarden.test/go_digest

go 1.19
