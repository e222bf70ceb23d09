"""The management listener on aiohttp: sign-in and sessions, middleware, input checks
at the edge, live streams, health; the JSON API and the HTML views below it.
"""
