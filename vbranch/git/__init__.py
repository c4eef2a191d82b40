"""The repository: git's command line for the fast paths (gitcli), pygit2 for objects, trees and the
index (gitops, the only module that imports pygit2), and paths and file states in the working tree."""
