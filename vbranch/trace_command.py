"""What the installed shell prefix runs: `python -S …/vbranch/trace_command.py '<command>'`.

Python compiles the script it is given at every run and caches only modules it imports; tracer.py
is large enough that compiling it cost every Bash command ~11 ms. So the prefix runs this stub,
which imports the tracer (its compiled form cached in __pycache__, as pip writes it at install) from
this directory, Python's first path entry for a script.
"""
if __name__ == "__main__":
    import sys

    import tracer

    sys.exit(tracer.main(sys.argv))
