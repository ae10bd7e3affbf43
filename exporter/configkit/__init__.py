"""What every config section is built of: strict models, durations, the fields every vendor
account has, target labels, metric filters, and the words problems are written in.

Below the vendor packages (which build their sections from these) and the config loader
(which assembles the sections into the file's model), so that neither imports the other.
"""
