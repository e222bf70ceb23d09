"""Where a hit enters: the capture listener's own HTTP/1.1 protocol and the capture
steps (token, judge, enqueue, reply).
"""
