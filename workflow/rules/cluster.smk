# Phase rules of 'cluster' are added here by its issue; nothing is defined yet.
