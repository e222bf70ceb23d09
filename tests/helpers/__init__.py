"""What the tests share: the test database, a real `serve` process, the raw HTTP
client and free ports, a stand-in tracker, load, and signing in to the web views."""
