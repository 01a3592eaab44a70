# Phase rules of 'report' are added here by its issue; nothing is defined yet.
