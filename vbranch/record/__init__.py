"""Recording: folding the working tree's changes into line ownership, by tool call, by command trace
(traces reads the tracer's logs) or by window."""
